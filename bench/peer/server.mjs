// node-oidc-provider configured like our issuer for bench/run.sh: one confidential client with
// client_secret_basic and the client-credentials grant, JWT access tokens signed with ALG, discovery, JWKS.
// Environment: PORT, ALG (RS256 | ES256 | EdDSA), CLIENT_ID, CLIENT_SECRET.
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const port = Number(process.env.PORT ?? 3000);
const alg = process.env.ALG ?? 'ES256';
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

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID ?? 'bench',
    client_secret: process.env.CLIENT_SECRET ?? 'bench-secret-bench-secret-bench-secret-xx',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'media.read',
  }],
  jwks: { keys },
  enabledJWA: { idTokenSigningAlgValues: ['RS256'], requestObjectSigningAlgValues: ['RS256'] },
  scopes: ['openid', 'media.read'],
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
provider.listen(port, '127.0.0.1', () => console.log(`node-oidc-provider ${alg} on ${issuer}`));
