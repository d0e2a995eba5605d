"""The floor of the HTTP stack: a minimal Starlette endpoint on uvicorn (uvloop, httptools)."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request):  # type: ignore[no-untyped-def]
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/", hello, methods=["GET", "POST"])])
