# Usage segments, invoices and promotions arrive with the billing issue.
