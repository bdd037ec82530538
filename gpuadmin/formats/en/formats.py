# The staff console shows times as the API writes them (UTC, ISO order): short enough for a list column
# at 1280 px, and sortable by eye. "Dec. 1, 2026, 11:11 a.m." took twice the width.
DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i:s"
