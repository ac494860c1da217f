-- Validation macros used by the staging models. Each returns a reason a person can act on,
-- or null when the value is acceptable. A null value is "absent": required-ness is checked
-- separately with is_missing().

create or replace temp macro is_missing(field, v) as
    case when v is null then field || ' is missing (required)' end;

-- A date before 1900 or more than 50 years away from the run date is a typo (a year 0206, 2206):
-- its row is rejected rather than aged, charged or looked up in the reference rates (contract §1).
create or replace temp macro date_problem(field, v, as_of) as
    case
        when v is null then null
        when not regexp_full_match(v, '[0-9]{4}-[0-9]{2}-[0-9]{2}')
            then field || ' ''' || left(v, 40) || ''' is not a date written YYYY-MM-DD'
        when try_cast(v as date) is null
            then field || ' ' || v || ' is not a real calendar date'
        when try_cast(v as date) < date '1900-01-01'
            then field || ' ' || v || ' is before 1900: check the year'
        when try_cast(v as date) < cast(as_of as date) - interval 50 year
            then field || ' ' || v || ' is more than 50 years before the run date ' || cast(as_of as date) || ': check the year'
        when try_cast(v as date) > cast(as_of as date) + interval 50 year
            then field || ' ' || v || ' is more than 50 years after the run date ' || cast(as_of as date) || ': check the year'
    end;

create or replace temp macro amount_problem(field, v) as
    case
        when v is null then null
        when regexp_full_match(v, '-\s*[0-9]+([.,][0-9]*)?')
            then field || ' ' || v || ' is negative: amounts must be greater than 0'
        when regexp_full_match(v, '[0-9 ]*[0-9],[0-9]+')
            then field || ' ''' || v || ''' uses a comma: write amounts like 1234.56 ("." for decimals, no thousands separator)'
        when not regexp_full_match(v, '[0-9]+([.][0-9]+)?')
            then field || ' ''' || left(v, 40) || ''' is not a number written like 1234.56'
        when regexp_full_match(v, '[0-9]+[.][0-9]{3,}')
            then field || ' ' || v || ' has more than 2 decimals'
        when length(ltrim(split_part(v, '.', 1), '0')) > 16
            then field || ' ' || v || ' is too large (at most 16 digits before the decimal point)'
        when cast(v as decimal(18,2)) <= 0
            then field || ' must be greater than 0 (got ' || v || ')'
    end;

create or replace temp macro text_problem(field, v, max_len) as
    case when length(v) > max_len then field || ' is longer than ' || max_len || ' characters' end;

-- kept_row: the row kept for this id, the first one whose other checks all pass (contract §1);
-- null when every row of the id is invalid (each is then rejected for its own problems only).
create or replace temp macro duplicate_problem(field, v, row_no, kept_row) as
    case when v is not null and kept_row is not null and row_no <> kept_row
        then 'duplicate ' || field || ' ''' || v || ''' (row ' || kept_row || ', the first valid row with this id, is kept)' end;

-- 'true'/'false' in the usual spellings; null for anything else.
create or replace temp macro parse_bool(v) as
    case
        when v is null then false
        when lower(v) in ('true', 't', '1', 'yes', 'y', 'oui', 'x') then true
        when lower(v) in ('false', 'f', '0', 'no', 'n', 'non') then false
    end;

-- email_ok(v): a Python function on the connection (relance.core.emails, the rule dispatch uses).
