// Starts Swagger UI on /docs. A file rather than FastAPI's inline script, so /docs runs
// under the same strict Content-Security-Policy as every other page.
// deepLinking stays off: it puts a link inside each operation's expand button, which
// screen readers cannot reach (axe: nested-interactive).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: false,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis],
});
