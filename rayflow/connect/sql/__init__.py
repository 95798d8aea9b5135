"""SQL connector components: reads as Arrow, writes from Arrow, pooled connections.

``rayflow.connect.sql.urls`` reads a connection URL, ``drivers`` opens connections (the one
module importing ADBC and aiomysql), ``pool`` keeps them per URL per process, ``read`` and
``write`` are the components' code, ``errors`` says which failures are transient.
"""
