"""The API docs page, served whole by the hub: ``/docs`` works on a network without internet.

Litestar's Swagger UI page loads its script, styles and icon from a CDN by default, which leaves a
blank page offline. The Swagger UI release packaged on PyPI (``swagger-ui-bundle-v2``, Swagger UI 5,
which reads OpenAPI 3.1) is served from ``/static/swagger-ui/`` and the page points there.
"""

from __future__ import annotations

from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler
from swagger_ui_bundle import swagger_ui_path

__all__ = ["ASSETS_PATH", "docs_assets_router", "swagger_page"]

ASSETS_PATH = "/static/swagger-ui"


def swagger_page() -> SwaggerRenderPlugin:
    """Swagger UI at ``/docs`` with every asset from :data:`ASSETS_PATH`."""
    return SwaggerRenderPlugin(
        path="/",
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )


def docs_assets_router() -> ControllerRouterHandler:
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[swagger_ui_path],
        include_in_schema=False,
        opt={"exclude_from_auth": True},
        name="swagger_ui_assets",
    )
