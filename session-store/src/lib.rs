//! A `tower-sessions` session store with a per-user index, so that a person's sessions can be listed and
//! revoked: Redis in production, an embedded backend by default. Filled by the sessions issue.
