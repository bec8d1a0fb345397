"""``zoo demo [NAME ...] [--host 127.0.0.1] [--port 7860]``: every shipped model in one local page.

The app is Starlette served by uvicorn (the ``demo`` extra; docs/decisions.md says why not Gradio):

    GET  /                      the page (zoo/demo/page.html), the tabs' cards inlined as JSON
    GET  /api/tabs              the cards
    POST /api/NAME/ACTION       one tab's action (ACTIONS): JSON in and out; an upload is the raw
                                request body (its file name in ``X-Filename``), ``?example=1`` draws one

Every answer is JSON, a bad input too: ``{"error": message}`` with status 400 (a known user error:
:func:`zoo.cli.common.is_user_error`), 413 (a body over the limit) or 500 (a bug: the traceback goes
to the server's log, never to the page), and the server goes on answering. Uploads are written to a
temporary folder and read by the same readers as the commands (``datamodules.images.load_image``,
``datamodules.video_io.read_clip``). Nothing is fetched from anywhere: the page is one file.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import unquote

from zoo.cli import common
from zoo.errors import InputError

MAX_JSON_BYTES = 2**20  # a text field: a review, a prime, a pasted source file
MAX_UPLOAD_BYTES = 16 * 2**20  # an image or a video clip
DRAIN_BYTES = 256 * 2**20  # an oversized body is read (and dropped) up to here, so the browser gets the answer
PAGE = Path(__file__).with_name("page.html")

#: the actions of each kind of tab: name -> (the tab's method, what the request carries)
ACTIONS: Dict[str, Dict[str, str]] = {
    "char_lm": {"sample": "json", "units": "json"},
    "classifier": {"classify": "json"},
    "translator": {"translate": "json"},
    "captioner": {"caption": "upload"},
    "vqa": {"answer": "upload"},
    "video": {"label": "upload"},
}


class RequestError(InputError):
    """A request the demo cannot take (too big, not JSON, an unknown tab or action), with its status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ---- reading requests --------------------------------------------------------------------------
async def read_body(request: Any, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes: a bigger one is drained and refused (413)."""
    declared = request.headers.get("content-length", "")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_BYTES:
            break
    if size > limit or (declared.isdigit() and int(declared) > limit):
        raise RequestError(f"the input is {max(size, int(declared or 0)):,} bytes; this tab takes at most {limit:,} bytes", 413)
    return b"".join(chunks)


def parse_json(body: bytes) -> Dict[str, Any]:
    try:
        fields = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(f"the request is not UTF-8 JSON ({error})") from None
    if not isinstance(fields, dict):
        raise RequestError(f"the request must be a JSON object, got {type(fields).__name__}")
    return fields


def number(fields: Dict[str, Any], key: str, default: Any, cast: Callable[[Any], Any]) -> Any:
    """``fields[key]`` as ``cast`` (int or float); empty or missing: ``default``."""
    value = fields.get(key)
    if value in (None, ""):
        return default
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise RequestError(f"{key} must be a number, got {value!r}") from None


def upload_name(request: Any) -> str:
    """The uploaded file's name as the page sent it, reduced to a safe file name (its suffix kept:
    the readers tell a video by it)."""
    name = Path(unquote(request.headers.get("x-filename", "upload"))).name
    stem, suffix = Path(name).stem, Path(name).suffix
    suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""
    return (re.sub(r"[^A-Za-z0-9_-]", "_", stem)[:64] or "upload") + suffix


# ---- the actions -------------------------------------------------------------------------------
def run_json(tab: Any, action: str, fields: Dict[str, Any]) -> Any:
    """A text action's answer (the sample: an iterator of text pieces)."""
    if action == "sample":
        return tab.sample(
            fields.get("prime", ""),
            number(fields, "temperature", 0.8, float),
            number(fields, "length", 300, int),
            number(fields, "seed", None, int),
        )
    if action == "units":
        return tab.units(fields.get("text", ""), fields.get("unit") or None)
    if action == "classify":
        return tab.classify(fields.get("text", ""))
    return tab.translate(fields.get("text", ""), number(fields, "beam_size", 5, int))


def run_upload(tab: Any, action: str, data: Optional[bytes], name: str, question: str) -> Dict[str, Any]:
    """An image or video action on the uploaded bytes (``None``: the command's example, drawn)."""
    with tempfile.TemporaryDirectory(prefix="zoo-demo-") as tmp:
        folder, note = Path(tmp), ""
        if data is None:
            path, note = tab.example(folder)
            name, note = path.name, note.replace(str(path), path.name)
        else:
            if not data:
                raise InputError(f"{name}: the file is empty")
            path = folder / name
            path.write_bytes(data)
        try:
            if action == "caption":
                result = tab.caption(path)
            elif action == "answer":
                result = tab.answer(path, question)
            else:
                result = tab.label(path)
        except Exception as error:  # noqa: BLE001 - re-raised with the user's file name instead of the temporary path
            if common.is_user_error(error) and str(path) in str(error):
                raise InputError(common.error_message(error).replace(str(path), name)) from None
            raise
        if data is None and action != "label":
            from zoo.demo.tabs import png_uri

            result["input"] = png_uri(path)
        return {**result, "file": name, "note": note}


def failure(error: BaseException) -> tuple[Dict[str, str], int]:
    """The JSON of a failed request and its status: a user error's message, or a bug named (its
    traceback to the log)."""
    if isinstance(error, RequestError):
        return {"error": str(error)}, error.status
    if common.is_user_error(error):
        return {"error": common.error_message(error)}, 400
    traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    return {"error": f"internal error ({type(error).__name__}: {error}); the server's log has the traceback"}, 500


# ---- the app -----------------------------------------------------------------------------------
def page_html(cards: List[Dict[str, Any]]) -> str:
    """The page with the cards inlined (``</`` escaped: a card cannot close the script element)."""
    data = json.dumps(cards, ensure_ascii=False).replace("</", "<\\/")
    return PAGE.read_text(encoding="utf-8").replace("__ZOO_TABS__", data)


def build_app(tabs: Dict[str, Any]):
    """The Starlette app over loaded tabs (``{name: zoo.demo.tabs.Tab}``)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
    from starlette.routing import Route

    cards = [tab.card() for tab in tabs.values()]
    page = page_html(cards)

    async def index(request: Any) -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def list_tabs(request: Any) -> JSONResponse:
        return JSONResponse(cards)

    async def act(request: Any) -> Any:
        name, action = request.path_params["name"], request.path_params["action"]
        try:
            tab = tabs.get(name)
            if tab is None:
                raise RequestError(f"no tab {name!r} (tabs: {', '.join(tabs)})", 404)
            carries = ACTIONS[tab.kind].get(action)
            if carries is None:
                raise RequestError(f"tab {name!r} has no action {action!r} (it has {', '.join(ACTIONS[tab.kind])})", 404)
            if carries == "json":
                fields = parse_json(await read_body(request, MAX_JSON_BYTES))
                result = await run_in_threadpool(run_json, tab, action, fields)
                if action == "sample":
                    return StreamingResponse(result, media_type="text/plain; charset=utf-8")
                return JSONResponse(result)
            example = request.query_params.get("example", "") not in ("", "0")
            data = None if example else await read_body(request, MAX_UPLOAD_BYTES)
            question = request.query_params.get("question", "")
            result = await run_in_threadpool(run_upload, tab, action, data, upload_name(request), question)
            return JSONResponse(result)
        except Exception as error:  # noqa: BLE001 - every failure is an answer; the server goes on
            body, status = failure(error)
            return JSONResponse(body, status_code=status)

    routes = [Route("/", index), Route("/api/tabs", list_tabs), Route("/api/{name}/{action}", act, methods=["POST"])]
    return Starlette(routes=routes)


def load_tabs(names: List[str], device: str = "cpu") -> Dict[str, Any]:
    """Each model loaded once (a registered name or a pretrained folder), as its tab."""
    from zoo.demo.tabs import tab_for
    from zoo.tasks.base import load_pretrained

    tabs = {}
    for name in dict.fromkeys(names):
        tabs[name] = tab_for(name, load_pretrained(name).to(device).eval())
    return tabs


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one), or an ``InputError`` saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({error.strerror or error}); pick another --port or --host") from None
    sock.listen(128)
    return sock


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zoo demo",
        description="Serve every shipped model (or the NAMEs given) in one local web page, a tab "
        "per model: type, upload or draw an example and see the answer with its picture. Nothing is fetched "
        "from the network; the page binds 127.0.0.1 unless --host says otherwise.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="registered models (see `zoo models`) or pretrained folders; default: every registered model with weights",
    )
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="the port (default 7860; 0 = any free port, printed)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="where the models run (default cpu)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")

    def run() -> int:
        try:
            import starlette  # noqa: F401
            import uvicorn
        except ImportError as error:
            raise InputError(f'zoo demo needs its extra ({error.name} is missing): pip install -e ".[demo]"') from None
        from zoo.hub.registry import list_models

        tabs = load_tabs(args.names or list_models(pretrained=True), common.device_of(args.device))
        sock = bind(args.host, args.port)
        host, port = sock.getsockname()[:2]
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"zoo demo: note: listening on {args.host}: other machines can reach this page", file=sys.stderr)
        print(
            f"zoo demo: {len(tabs)} model(s) ({', '.join(tabs)}) at http://{'[' + host + ']' if ':' in host else host}:{port}/ "
            "(Ctrl-C stops)",
            flush=True,
        )
        server = uvicorn.Server(uvicorn.Config(build_app(tabs), log_level="warning", access_log=False))
        server.run(sockets=[sock])
        return 0

    return common.guarded("zoo demo", run)
