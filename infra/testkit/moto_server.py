"""flexrzp's launcher for the moto AWS emulator: `moto_server`, with DynamoDB made serializable.

Why it exists: moto (5.2.5, the newest on PyPI when this was written) runs every request on its
own thread and does not isolate DynamoDB requests from each other. A `TransactWriteItems` whose
condition fails is rolled back by restoring a copy of the whole table taken when the
transaction began, which wipes out whatever other requests committed in the meantime; a
transaction can also interleave with a concurrent write and be seen half-applied. DynamoDB
itself is serializable per item and all-or-nothing per transaction, and flexrzp's correctness
rests on exactly that (claims that find duplicates, conditional creates that lose races,
transactions that write a pair of items), so the tests and the local stack must run on an
emulator that keeps those promises.

What it does: it serves moto's own application exactly as `moto_server` does, with one WSGI
middleware in front that runs DynamoDB requests one at a time (one lock for every table). The
request body is read before the lock is taken and the whole answer is produced inside it, so a
slow client never holds the lock. SQS (whose long polls would stall everything behind a lock)
and Secrets Manager requests are not serialized.

Usage: python moto_server.py -H 127.0.0.1 -p PORT
"""

import argparse
import io
import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def is_dynamodb(environ):
    """A DynamoDB API call: named by its JSON-protocol target, or signed for the service."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith("DynamoDB_"):
        return True
    return "/dynamodb/aws4_request" in environ.get("HTTP_AUTHORIZATION", "")


def read_body(environ):
    """Reads the request body off the socket and hands the app an in-memory copy of it."""
    stream = environ["wsgi.input"]
    if environ.get("CONTENT_LENGTH"):
        body = stream.read(int(environ["CONTENT_LENGTH"]))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()  # chunked: werkzeug ends the stream with the body
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


class SerializedDynamoDB:
    """Runs DynamoDB requests one at a time; passes every other request straight through."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not is_dynamodb(environ):
            return self.app(environ, start_response)
        read_body(environ)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                answer = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [answer]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(
        args.host,
        args.port,
        SerializedDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
