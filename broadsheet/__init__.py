"""Broadsheet: archives of scraped news articles to analytics-ready, Hive-partitioned Parquet."""

__version__ = "0.1.0"
