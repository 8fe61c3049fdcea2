"""Events between services over RabbitMQ: envelopes, topology, a confirming publisher, a safe consumer."""
