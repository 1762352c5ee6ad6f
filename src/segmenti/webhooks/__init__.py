"""Webhooks: signed deliveries of membership events (docs/events-and-webhooks.md).

`secrets` keeps signing secrets encrypted, `signing` signs as Standard Webhooks says,
`addresses` refuses internal destinations (SSRF), `sender` makes one attempt,
`service` is the webhooks' CRUD, and `deliverer` batches, claims and sends."""
