"""The 4D viewer of an infer.py output folder, in the browser: play/pause, frame slider, speed, orbit and zoom.

    python view.py outputs/walker                 # serves the viewer on http://127.0.0.1:8000/ and opens it
    python view.py outputs/walker --no-browser --port 8080

The page is built from the folder's ply/frame_NNN.ply files (so it also works for folders written before
viewer.html existed) and served from memory; nothing is written. Every output folder also holds viewer.html,
which plays the same animation when opened straight from disk.
Exit codes: 2 for a folder that is not an output folder, 1 for a missing or unreadable frame file.
"""
from __future__ import annotations

import argparse
import http.server
import webbrowser
from pathlib import Path

from data.cli import Failure, UsageError, entry_point, non_negative_int
from viewer.page import NotAnOutputFolder, ViewerError, page_for_folder


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python view.py", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="an infer.py output folder (meta.json, ply/)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    p.add_argument("--port", type=non_negative_int, default=8000, help="port (0: any free one)")
    p.add_argument("--no-browser", dest="browser", action="store_false", help="only print the address")
    return p.parse_args(argv)


def make_server(page: str, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """An HTTP server that answers GET / (and /viewer.html) with `page`, anything else with 404."""
    body = page.encode("utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server name)
            if self.path.split("?")[0] not in ("/", "/viewer.html"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # one line per request on stderr is noise for a viewer
            pass

    return http.server.ThreadingHTTPServer((host, port), Handler)


@entry_point
def main(argv=None) -> None:
    """`python view.py OUTPUT_DIR`: serve the folder's viewer until Ctrl+C."""
    args = parse_args(argv)
    try:
        page = page_for_folder(args.folder)
    except NotAnOutputFolder as err:
        raise UsageError(str(err)) from None
    except ViewerError as err:
        raise Failure(str(err)) from None
    server = make_server(page, args.host, args.port)
    url = f"http://{args.host}:{server.server_address[1]}/"
    print(f"viewer of {args.folder} at {url} (Ctrl+C stops)", flush=True)
    if args.browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
