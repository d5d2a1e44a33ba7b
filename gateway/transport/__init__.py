"""Transports beside HTTP pull: workers that move envelopes from the outbox to the wire and
hand the receipts they find to :func:`gateway.pipeline.receive`.

* :mod:`.amqp`: RabbitMQ (publisher confirms out, manual acks in, a dead-letter queue).
* :mod:`.folder`: a DXP transfer client's send and receive folders.

Both are thin shells over the same stages (:mod:`.common`): the store's outbox lease and
ack for envelopes, :class:`~.common.ReceiptTaker` for receipts.  So durability, per-sender
order and routing do not depend on the transport.
"""
