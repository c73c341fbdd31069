"""Planning: bin choice, placement, affordances, primitives, suction candidates, retries."""
