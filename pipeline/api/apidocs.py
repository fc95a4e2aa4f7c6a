"""The API's own documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc).

FastAPI's defaults load both from a CDN: on a machine without internet they
are blank pages. Here their assets ship in the package
(``pipeline/api/vendor``, copied unchanged from the npm packages
``swagger-ui-dist`` and ``redoc`` with their licences; ``vendor/README.md``
says which versions and how to refresh them) and are served by the API
itself, so the pages need nothing but the server they come from. Like the
dashboard page, they hold no data and need no token; the schema they read
(``/openapi.json``) describes the routes, not the jobs.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

#: The path the assets are served under.
ASSETS = "/docs-assets"
#: Every file served, per vendored package, with its media type.
FILES: dict[str, dict[str, str]] = {
    "swagger-ui": {
        "swagger-ui-bundle.js": "text/javascript",
        "swagger-ui.css": "text/css",
        "favicon-32x32.png": "image/png",
        "LICENSE": "text/plain",
        "NOTICE": "text/plain",
        "swagger-ui-bundle.js.LICENSE.txt": "text/plain",
    },
    "redoc": {
        "redoc.standalone.js": "text/javascript",
        "LICENSE": "text/plain",
        "redoc.standalone.js.LICENSE.txt": "text/plain",
    },
}
#: Seconds a browser may keep an asset: they change only with the package.
MAX_AGE = 86_400


def asset(package: str, name: str) -> bytes:
    """The bytes of one vendored file (``KeyError`` if it is not one of :data:`FILES`)."""
    if name not in FILES[package]:
        raise KeyError(name)
    return resources.files("pipeline.api").joinpath("vendor", package, name).read_bytes()


@router.get(f"{ASSETS}/{{package}}/{{name}}")
def vendored(package: str, name: str) -> Response:
    """One file of Swagger UI or ReDoc, as shipped in the package."""
    try:
        body = asset(package, name)
    except KeyError:
        raise HTTPException(404, f"{package}/{name} is not a documentation asset") from None
    return Response(body, media_type=FILES[package][name],
                    headers={"Cache-Control": f"public, max-age={MAX_AGE}"})


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    """Swagger UI on the API's OpenAPI schema."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json", title="pipeline API",
        swagger_js_url=f"{ASSETS}/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/swagger-ui/favicon-32x32.png",
        # The "valid" badge would ask validator.swagger.io about the schema.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True})


@router.get("/redoc")
def redoc() -> HTMLResponse:
    """ReDoc on the API's OpenAPI schema."""
    return get_redoc_html(
        openapi_url="/openapi.json", title="pipeline API",
        redoc_js_url=f"{ASSETS}/redoc/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS}/swagger-ui/favicon-32x32.png",
        with_google_fonts=False)
