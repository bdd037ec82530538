"""The API's own input limits, in one place with no Django import, so that gunicorn.conf.py can set the
server's limits above them (the API, not gunicorn, must be the one that answers, with its JSON body).
"""

# The URL of a request (path, `?` and query string), in characters: longer is a 414.
MAX_URL_LENGTH = 4096
# The X-Filter header's value, in characters: longer is a 400 naming X-Filter.
MAX_FILTER_LENGTH = 8192
# Nesting of a JSON document (a request body or X-Filter): deeper is a 400, refused before parsing, so
# that the parser never recurses that far. Linode's bodies are a few levels deep.
MAX_JSON_DEPTH = 32
# A request body, in bytes, unless settings.GPUADMIN_API_MAX_BODY_BYTES says otherwise: larger is a 413.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
