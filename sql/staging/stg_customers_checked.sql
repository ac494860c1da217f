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
        -- a regional tag names its language: fr-BE, fr_FR and FR are fr
        coalesce(lower(regexp_extract(source.language, '^([A-Za-z]{2})([-_][A-Za-z]{2})?$', 1)), '') as language_tag,
        lower(coalesce(source.segment, 'b2b')) as segment_code,
        parse_bool(source.dunning_block) as dunning_block_flag,
        -- relance.core.phones (a Python function on the connection): E.164, or why the phone is dropped
        phone_check(source.phone, upper(coalesce(source.country, 'FR'))) as phone_checked
    from source
),

checked_row as (
    select
        parsed.*,
        nullif(concat_ws('; ',
            is_missing('customer_id', customer_id),
            text_problem('customer_id', customer_id, 100),
            is_missing('name', name),
            text_problem('name', name, 500),
            case when country_code not in (select country from countries)
                then 'country ''' || left(country, 40) || ''' is not an ISO 3166 two-letter code (e.g. FR, BE, DE, GB)' end,
            case when segment_code not in ('b2b', 'b2c', 'public')
                then 'segment ''' || left(segment, 40) || ''' is not b2b, b2c or public' end,
            case when dunning_block_flag is null
                then 'dunning_block ''' || left(dunning_block, 40) || ''' is not true or false' end,
            text_problem('street', street, 500),
            text_problem('city', city, 200),
            text_problem('postal_code', postal_code, 20),
            text_problem('collector', collector, 200)
        ), '') as row_problem,
        -- relance.core.emails (a Python function on the connection): the address rule dispatch uses
        email is not null and not email_ok(email) as email_dropped,
        phone_checked.problem is not null as phone_dropped,
        language is not null and language_tag not in ('fr', 'en') as language_dropped
    from parsed
),

kept as (
    -- the first valid row of each id is kept (contract §1)
    select
        checked_row.*,
        min(_row_number) filter (where row_problem is null) over (partition by customer_id) as kept_row
    from checked_row
),

checked as (
    select
        kept.*,
        nullif(concat_ws('; ', row_problem, duplicate_problem('customer_id', customer_id, _row_number, kept_row)), '')
            as reject_reason
    from kept
)

select
    customer_id,
    name,
    case when not email_dropped then email end as email,
    phone_checked.e164 as phone,
    street,
    postal_code,
    city,
    country_code as country,
    case when language_tag in ('fr', 'en') then language_tag else $default_language end as language,
    segment_code as segment,
    coalesce(dunning_block_flag, false) as dunning_block,
    collector,
    -- optional labels the ladder rules read (comma-separated, e.g. key_account; a PostgreSQL text[]
    -- {key_account,vip} too): lower-case, trimmed,
    -- empty ones dropped; absent or empty: no tags. Never a reason to reject the customer.
    nullif(array_to_string(list_filter(
        list_transform(string_split(coalesce(tags, ''), ','), lambda t: trim(lower(t), ' {}"')), lambda t: t <> ''
    ), ','), '') as tags,
    reject_reason,
    nullif(concat_ws('; ',
        case when email_dropped then 'email ''' || left(email, 80) || ''' is not a valid address: the customer is loaded without email' end,
        case when phone_dropped then 'phone ''' || left(phone, 40) || ''' ' || phone_checked.problem || ': the customer is loaded without phone' end,
        case when language_dropped then 'language ''' || left(language, 40) || ''' has no templates (fr, en): the customer is loaded with the policy''s default language '
            || $default_language || '; set fr or en to choose' end
    ), '') as dropped_fields,
    _source,
    _row_number,
    _land_row
from checked
