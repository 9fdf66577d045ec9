"""The self-contained HTML fault report and the store index."""
