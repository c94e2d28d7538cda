"""Users, roles, key permissions, the auth revision and simple tokens
(etcd's ``server/auth``).  Owns the ``auth``, ``authUsers`` and ``authRoles``
backend buckets.  May import pyetcd.pb, pyetcd.storage and pyetcd.errors;
the server's apply path and the API layer use it."""
