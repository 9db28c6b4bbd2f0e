// Builds dist/: Swagger UI's static files from the swagger-ui-dist package plus discodeit's
// page and initializer (src/). The server serves dist/ at /swagger-ui/
// (DISCODEIT_SWAGGER_UI_DIR), nginx's image copies it to /usr/share/nginx/html/swagger-ui/.
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const upstream = join(here, 'node_modules', 'swagger-ui-dist');

// The bundle (no ES modules, no source maps), its styles, icons, and the OAuth2 redirect page
// Swagger UI links to.
const FROM_UPSTREAM = [
  'swagger-ui-bundle.js',
  'swagger-ui.css',
  'index.css',
  'favicon-16x16.png',
  'favicon-32x32.png',
  'oauth2-redirect.html',
  'oauth2-redirect.js',
  'LICENSE',
  'NOTICE',
];

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
for (const f of FROM_UPSTREAM) copyFileSync(join(upstream, f), join(dist, f));
for (const f of readdirSync(join(here, 'src'))) copyFileSync(join(here, 'src', f), join(dist, f));
console.log(`swagger-ui: ${FROM_UPSTREAM.length} upstream files + src/ -> ${dist}`);
