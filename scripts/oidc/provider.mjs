// A throwaway OpenID provider on loopback for ekg's token tests (issue 28): npm
// `oidc-provider` 9.x (OpenID Certified), client credentials grant, JWT access tokens
// (RFC 9068) through resource indicators (RFC 8707), signed with keys the test gives.
//
//   node provider.mjs CONFIG.json
//
// CONFIG.json:
//   { "port": 0,                                  // 0: any free port
//     "audience": "https://gk.example.com/ekg",   // the resource when the client names none
//     "keys": [{ "kid": "k1", "pem": "-----BEGIN PRIVATE KEY-----..." }],  // RSA PKCS#8, the first signs
//     "clients": [{ "client_id": "bob-client", "client_secret": "s", "claims": { "clearance": "itar" },
//                   "ttl": 300 }] }
//
// Listens on 127.0.0.1 only and prints one JSON line on stdout:
//   {"issuer": "http://127.0.0.1:PORT", "token_endpoint": ..., "jwks_uri": ..., "admin": ...}
// A token: POST token_endpoint with grant_type=client_credentials (client_secret_basic or
// client_secret_post), optionally resource=URI (the token's aud).
// Rotation: POST {admin}/keys with a JSON array like "keys": the provider is rebuilt with
// that key set (the first key signs from then on; the JWK Set publishes all of them).
// Exits when its standard input closes (the test that started it is gone).

import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const clients = new Map(config.clients.map((c) => [c.client_id, c]));

function jwks(keys) {
  return {
    keys: keys.map(({ kid, pem }) => ({
      ...createPrivateKey(pem).export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256',
    })),
  };
}

function provider(issuer, keys) {
  const p = new Provider(issuer, {
    jwks: jwks(keys),
    clients: config.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: c.auth ?? 'client_secret_basic',
    })),
    cookies: { keys: ['ekg-test-only'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource, client) => ({
          scope: 'release',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: clients.get(client.clientId)?.ttl ?? 300,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    // The per-client claims the gatekeeper's subject mappings test.
    extraTokenClaims: (_ctx, token) => clients.get(token.clientId)?.claims,
  });
  return p.callback();
}

let handler = null;
const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/admin/keys') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        const keys = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        handler = provider(issuerOf(server), keys);
        res.writeHead(204).end();
      } catch (e) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(String(e));
      }
    });
    return;
  }
  handler(req, res);
});

function issuerOf(s) {
  return `http://127.0.0.1:${s.address().port}`;
}

server.listen(config.port ?? 0, '127.0.0.1', () => {
  const issuer = issuerOf(server);
  handler = provider(issuer, config.keys);
  process.stdout.write(`${JSON.stringify({
    issuer,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    admin: `${issuer}/admin`,
  })}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
