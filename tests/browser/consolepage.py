"""What the console's browser tests share: logging a page in."""


def log_in(page, url, token):
    """Log *page* in to the console at *url* with *token* (its login
    form); the page ends on /runs."""
    page.goto(f"{url}/login")
    page.fill('input[name="token"]', token)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{url}/runs")
