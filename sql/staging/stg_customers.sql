-- model: stg_customers
-- grain: one row per valid customer
-- materialized: table
select
    customer_id, name, email, phone, street, postal_code, city, country, language, segment,
    dunning_block, collector, tags
from stg_customers_checked
where reject_reason is null
