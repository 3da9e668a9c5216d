"""``mail``: IMAP accounts read by UID without marking anything read (the fetcher), and
each fetched email parsed into headers, text and attachments (the function)."""
