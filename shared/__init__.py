"""Code common to the four consentflow services: contracts, settings, Kafka, PostgreSQL,
mail, links, HTTP and the embedded development stack."""
