"""``urls``: URLs to archive (X/Twitter posts, Hacker News items with the page they link to)
or to extract (PDFs), fetched with size and time limits from public addresses only."""
