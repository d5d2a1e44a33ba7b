"""The HTTP service: enterprises submit declarations and poll receipts; customs pulls the outbox
and posts receipts.  :func:`gateway.service.app.build_app` builds it."""
