"""``zoo demo``: every shipped model in one local web page, a tab per model.

- :mod:`zoo.demo.tabs` — what each kind of tab does with its model: the task's own ``predict`` and
  the pictures of :mod:`zoo.viz` and the commands' drawing helpers (:mod:`zoo.cli`), turned into
  JSON-able answers with PNGs inline; one lock per model, so requests share the loaded models safely.
- :mod:`zoo.demo.app` — the Starlette app (routes, upload size limits, a bad input as a message, never
  a traceback) and ``main``, the command (uvicorn on 127.0.0.1 by default).
- ``page.html`` — the page: one self-contained file, no script, style or font from anywhere else.

The demo sits on top, beside :mod:`zoo.cli`: nothing imports it (``zoo demo`` names it as a string in
the command table). Its extra: ``pip install -e ".[demo]"`` (starlette, uvicorn; docs/decisions.md
says why not Gradio).
"""
