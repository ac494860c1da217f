-- model: stg_customers_checked
-- grain: one row per row of the customers source, valid or not; reject_reason is null when valid
-- materialized: temp
with

source as (
    select * from raw_customers
),

countries as (
    select country from seed_countries
),

parsed as (
    select
        source.*,
        upper(coalesce(source.country, 'FR')) as country_code,
        lower(coalesce(source.language, 'fr')) as language_code,
        lower(coalesce(source.segment, 'b2b')) as segment_code,
        parse_bool(source.dunning_block) as dunning_block_flag,
        min(_row_number) over (partition by source.customer_id) as first_row
    from source
),

checked as (
    select
        parsed.*,
        nullif(concat_ws('; ',
            is_missing('customer_id', customer_id),
            text_problem('customer_id', customer_id, 100),
            duplicate_problem('customer_id', customer_id, _row_number, first_row),
            is_missing('name', name),
            text_problem('name', name, 500),
            case when country_code not in (select country from countries)
                then 'country ''' || left(country, 40) || ''' is not an ISO 3166 two-letter code (e.g. FR, BE, DE, GB)' end,
            case when language_code not in ('fr', 'en')
                then 'language ''' || left(language, 40) || ''' is not fr or en' end,
            case when segment_code not in ('b2b', 'b2c')
                then 'segment ''' || left(segment, 40) || ''' is not b2b or b2c' end,
            case when dunning_block_flag is null
                then 'dunning_block ''' || left(dunning_block, 40) || ''' is not true or false' end,
            text_problem('street', street, 500),
            text_problem('city', city, 200),
            text_problem('postal_code', postal_code, 20),
            text_problem('collector', collector, 200)
        ), '') as reject_reason,
        email is not null and not email_ok(email) as email_dropped,
        phone is not null and not phone_ok(phone) as phone_dropped
    from parsed
)

select
    customer_id,
    name,
    case when not email_dropped then email end as email,
    case when not phone_dropped then normalize_phone(phone) end as phone,
    street,
    postal_code,
    city,
    country_code as country,
    language_code as language,
    segment_code as segment,
    coalesce(dunning_block_flag, false) as dunning_block,
    collector,
    reject_reason,
    nullif(concat_ws('; ',
        case when email_dropped then 'email ''' || left(email, 80) || ''' is not a valid address: the customer is loaded without email' end,
        case when phone_dropped then 'phone ''' || left(phone, 40) || ''' is not an E.164 number like +33612345678: the customer is loaded without phone' end
    ), '') as dropped_fields,
    _source,
    _row_number
from checked
