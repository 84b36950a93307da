"""Layer 4, reports: each item's Allure labels and attachments (allure), the run-level files and HTML (html), the
case-by-backend matrix for the terminal, Markdown and HTML (summary)."""
