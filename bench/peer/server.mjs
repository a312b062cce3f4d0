// node-oidc-provider configured like our issuer for bench/run.sh: a confidential client with
// client_secret_basic and the client-credentials grant, JWT access tokens signed with ALG, discovery, JWKS;
// and a relying party whose refresh tokens rotate on every use, as ours do.
// Environment: PORT, ALG (RS256 | ES256 | EdDSA), CLIENT_ID, CLIENT_SECRET, RP_SECRET, and ID_TOKEN_ALG, the
// relying party's ID-token algorithm (RS256 by default; ALG or RS256 otherwise, the only keys served).
// With SEED_USERS=N and SEED_OUT=dir it first creates N accounts, each with a grant, a refresh token and an
// opaque access token (the kind its userinfo accepts), and writes a sample of SEED_SAMPLE of them to
// dir/refresh_tokens.txt and dir/access_tokens.txt, as idp/examples/bench_seed.rs does for ours.
// With ADMIN_PORT set as well, `POST /codes?n=N` on that port (loopback) mints N authorization codes for the
// seeded users and answers them one per line: codes live 60 s, so bench/run.sh mints them before each run.
// They carry the PKCE challenge of RFC 7636's example verifier and the relying party's redirect URI, as ours do.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import { generateKeyPair, exportJWK } from 'jose';

// The default in-memory adapter keeps 1,000 entries (an LRU); its adapter over a plain Map keeps every seeded
// token (a Map's `set` ignores the LRU's third argument, the entry's lifetime; tokens still check their own).
const store = new Map();

const port = Number(process.env.PORT ?? 3000);
const alg = process.env.ALG ?? 'ES256';
const idTokenAlg = process.env.ID_TOKEN_ALG ?? 'RS256';
const issuer = `http://127.0.0.1:${port}`;
const audience = 'urn:bench:api';

async function key(algorithm, kid) {
  const options = algorithm === 'EdDSA' ? { crv: 'Ed25519', extractable: true } : { extractable: true };
  const { privateKey } = await generateKeyPair(algorithm, options);
  return { ...(await exportJWK(privateKey)), kid, alg: algorithm, use: 'sig' };
}

// ID tokens need an RS256 key, as ours do; access tokens use ALG.
const keys = [await key('RS256', 'rs256')];
if (alg !== 'RS256') keys.push(await key(alg, alg.toLowerCase()));

const rpScope = 'openid offline_access media.read';
const rpRedirectUri = 'https://rp.bench.test/callback';
// RFC 7636 Appendix B: the S256 challenge of the verifier dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk.
const codeChallenge = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
// The seeded users' grants, which the minted codes are spread over.
const seededGrants = [];
// Accounts live in memory, as the tokens do: the refresh grant and userinfo look the account up.
const accounts = new Map();

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID ?? 'bench',
    client_secret: process.env.CLIENT_SECRET ?? 'bench-secret-bench-secret-bench-secret-xx',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'media.read',
  }, {
    client_id: 'bench-rp',
    client_secret: process.env.RP_SECRET ?? 'bench-rp-secret-bench-rp-secret-bench-rp',
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: [rpRedirectUri],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: idTokenAlg,
    scope: rpScope,
  }],
  jwks: { keys },
  enabledJWA: { idTokenSigningAlgValues: [...new Set(['RS256', idTokenAlg])], requestObjectSigningAlgValues: ['RS256'] },
  scopes: ['openid', 'offline_access', 'media.read'],
  rotateRefreshToken: true,
  adapter: (model) => new MemoryAdapter(model, store),
  async findAccount(ctx, sub) {
    const account = accounts.get(sub);
    return account && { accountId: sub, claims: async () => ({ sub, name: account.name }) };
  },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope: 'media.read', audience, accessTokenFormat: 'jwt', jwt: { sign: { alg } } }),
    },
  },
});
async function seed(users, sample, out) {
  const client = await provider.Client.find('bench-rp');
  const stride = Math.max(1, Math.floor(users / Math.max(sample, 1)));
  const refreshTokens = [];
  const accessTokens = [];
  for (let i = 0; i < users; i += 1) {
    const accountId = `user${i}`;
    accounts.set(accountId, { name: `Bench user ${i}` });
    const grant = new provider.Grant({ accountId, clientId: client.clientId });
    grant.addOIDCScope('openid offline_access');
    grant.addResourceScope(audience, 'media.read');
    const grantId = await grant.save();
    if (seededGrants.length < 10000) seededGrants.push({ accountId, grantId });
    const common = { accountId, client, grantId, gty: 'authorization_code', expiresWithSession: false };
    const refreshToken = await new provider.RefreshToken({ ...common, scope: rpScope, resource: audience, authTime: Date.now() / 1000 | 0 }).save();
    const accessToken = await new provider.AccessToken({ ...common, scope: 'openid' }).save();
    if (i % stride === 0 && i / stride < sample) {
      refreshTokens.push(refreshToken);
      accessTokens.push(accessToken);
    }
  }
  mkdirSync(out, { recursive: true });
  writeFileSync(`${out}/refresh_tokens.txt`, `${refreshTokens.join('\n')}\n`);
  writeFileSync(`${out}/access_tokens.txt`, `${accessTokens.join('\n')}\n`);
}

async function mintCodes(n) {
  const client = await provider.Client.find('bench-rp');
  const authTime = Date.now() / 1000 | 0;
  const codes = [];
  for (let i = 0; i < n; i += 1) {
    const { accountId, grantId } = seededGrants[i % seededGrants.length];
    codes.push(await new provider.AuthorizationCode({
      accountId, client, grantId, authTime, scope: rpScope, resource: audience, redirectUri: rpRedirectUri,
      codeChallenge, codeChallengeMethod: 'S256', nonce: 'bench-nonce', expiresWithSession: false,
    }).save());
  }
  return codes;
}

if (process.env.SEED_USERS) {
  await seed(Number(process.env.SEED_USERS), Number(process.env.SEED_SAMPLE ?? 9000), process.env.SEED_OUT ?? '.');
  if (process.env.ADMIN_PORT) {
    createServer(async (req, res) => {
      const url = new URL(req.url, 'http://127.0.0.1');
      const n = Number(url.searchParams.get('n'));
      if (req.method !== 'POST' || url.pathname !== '/codes' || !Number.isInteger(n) || n < 1) {
        res.writeHead(400).end('POST /codes?n=N\n');
        return;
      }
      try {
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`${(await mintCodes(n)).join('\n')}\n`);
      } catch (error) {
        res.writeHead(500).end(`${error}\n`);
      }
    }).listen(Number(process.env.ADMIN_PORT), '127.0.0.1');
  }
}
provider.listen(port, '127.0.0.1', () => console.log(`node-oidc-provider ${alg} on ${issuer}`));
