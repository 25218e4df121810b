// A real OpenID Connect provider (the certified `oidc-provider` from npm) as the EHR's authorization server in the
// coordinator page's tests. Usage: node provider.mjs MODULES PORT CLIENT_ID REDIRECT_URI [REDIRECT_URI...]
// Binds 127.0.0.1 only. Its development sign-in page takes any login (and password) and gives that login as the
// subject, with fhirUser = Practitioner/<login> and name = the login: the SMART App Launch claims fhir3t reads.
// MODULES is the node_modules folder oidc-provider was installed into (the tests install it under .cache).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, port, clientId, ...redirects] = process.argv.slice(2);
const { default: Provider } = await import(pathToFileURL(join(modules, 'oidc-provider', 'lib', 'index.js')).href);
const issuer = `http://127.0.0.1:${port}`;

const configuration = {
  clients: [{
    client_id: clientId,
    token_endpoint_auth_method: 'none',   // a public client: PKCE, no secret
    redirect_uris: redirects,
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  scopes: ['openid', 'fhirUser', 'profile', 'launch', 'launch/patient', 'user/*.read'],
  claims: { openid: ['sub'], fhirUser: ['fhirUser'], profile: ['name', 'preferred_username'] },
  extraParams: ['launch', 'aud'],      // SMART App Launch: the EHR's launch context and the FHIR server
  conformIdTokenClaims: false,         // the scopes' claims in the id token itself (SMART: fhirUser is there)
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['fhir3t-tests-only'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, fhirUser: `Practitioner/${id}`, name: id, preferred_username: id };
      },
    };
  },
};

const provider = new Provider(issuer, configuration);
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
