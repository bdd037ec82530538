"""gunicorn's configuration for gpuadmin: `gunicorn -c gunicorn.conf.py` serves the application.

The request limits sit above the API's own (gpuadmin.api.limits), so that an over-long URL or X-Filter
is answered by the API with its JSON error body instead of gunicorn's HTML page. What gunicorn still
refuses by itself (beyond these limits, or a request it cannot parse) is listed in docs/api.md.
Environment: GPUADMIN_BIND (default 127.0.0.1:8000), GPUADMIN_WEB_WORKERS (default 2).
"""

import os

from gpuadmin.api.limits import MAX_FILTER_LENGTH, MAX_URL_LENGTH

wsgi_app = "gpuadmin.wsgi:application"
bind = os.environ.get("GPUADMIN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GPUADMIN_WEB_WORKERS", "2"))

# The request line is "METHOD URL HTTP/1.1": 8190 is gunicorn's largest finite limit (0 would mean
# unlimited). URLs from MAX_URL_LENGTH + 1 to about 8,170 characters get the API's JSON 414.
limit_request_line = 8190
# One header line, name included. Twice the X-Filter limit: an X-Filter up to about 16,000 characters
# gets the API's JSON 400 that names the limit; Linode's clients send nothing near that.
limit_request_field_size = 2 * MAX_FILTER_LENGTH
# Header lines a request may have; API clients send about ten.
limit_request_fields = 100

assert limit_request_line > MAX_URL_LENGTH + len("OPTIONS  HTTP/1.1"), "the API's URL limit must answer first"
assert limit_request_field_size > MAX_FILTER_LENGTH + len("X-Filter: \r\n"), "the X-Filter limit must answer"
