"""``hackernews``: the items a Hacker News account favourited or upvoted (a scheduled
fetcher), and the readable text of what each links to (a function)."""
