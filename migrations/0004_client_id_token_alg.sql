-- OpenID Connect Dynamic Client Registration §2 `id_token_signed_response_alg`: the algorithm of this
-- client's ID tokens. NULL means RS256, which every relying party must support (OIDC Core §15.1).
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT;
