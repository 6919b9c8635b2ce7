"""Gunicorn settings, read from the working directory (``make run`` starts there).

Command-line flags override anything set here. Gunicorn answers some requests
itself, before the app sees them: a header line over ``limit_request_field_size``
(8190 bytes), more than ``limit_request_fields`` (100) headers, a request line
over ``limit_request_line`` (4094 bytes), malformed HTTP. It writes those
answers as HTML; the hook below writes them in the service's JSON error shape.
"""
import json

from gunicorn import util

_SHORT_NAMES = {400: "bad_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
                431: "header_fields_too_large", 500: "internal_error", 501: "not_implemented"}


def _json_error(sock, status_int, reason, mesg):
    body = json.dumps({"error": _SHORT_NAMES.get(status_int, f"http_{status_int}"),
                       "message": f"{reason}: {mesg}" if mesg else reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
            f"Cache-Control: no-store\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


util.write_error = _json_error
