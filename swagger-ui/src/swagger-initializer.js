// discodeit's Swagger UI set-up. The document comes from the server (/v3/api-docs, as springdoc
// serves it). "Try it out" works against this server:
//  - CSRF: every unsafe request carries X-XSRF-TOKEN with the XSRF-TOKEN cookie's value; the
//    cookie is fetched from /api/auth/csrf-token first when the browser has none.
//  - Bearer: the Authorize button takes an access token; a successful "Try it out" of
//    login, refresh or me authorizes the page with the token it returned.
window.onload = () => {
  const UNSAFE = /^(POST|PUT|PATCH|DELETE)$/i;
  const TOKEN_PATHS = /\/api\/auth\/(login|refresh|me)$/;
  const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

  const readCookie = (name) => {
    for (const part of document.cookie.split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === name) return decodeURIComponent(v.join('='));
    }
    return '';
  };

  const csrfToken = async () => {
    const existing = readCookie('XSRF-TOKEN');
    if (existing) return existing;
    const res = await fetch('/api/auth/csrf-token', { credentials: 'same-origin' });
    return (await res.json()).token;
  };

  const ui = SwaggerUIBundle({
    url: '/v3/api-docs',
    dom_id: '#swagger-ui',
    deepLinking: true,
    persistAuthorization: true,
    displayRequestDuration: true,
    docExpansion: 'list',
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    requestInterceptor: async (req) => {
      req.credentials = 'same-origin';
      if (UNSAFE.test(req.method || '')) req.headers['X-XSRF-TOKEN'] = await csrfToken();
      return req;
    },
    responseInterceptor: (res) => {
      const path = new URL(res.url, window.location.href).pathname;
      if (res.ok && TOKEN_PATHS.test(path)) {
        const body = typeof res.body === 'string' ? res.body : res.text || '';
        const token = body.trim().replace(/^"|"$/g, '');
        if (JWT.test(token)) ui.preauthorizeApiKey('bearerAuth', token);
      }
      return res;
    },
  });
  window.ui = ui;
};
