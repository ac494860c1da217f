-- Planned deliveries of a stage that needs approval (policy `requires_approval`) whose action
-- nobody has decided on yet: they wait as pending_approval until `relance approve`
-- (or --auto-approve). The ladder already plans them so; this is the dispatch's own guard.
-- The stage as the action's ladder has it ('ladder|stage' pairs), or the action itself (a ladder
-- that wants every letter approved records requires_approval on the action), or a letter of a
-- ladder that wants every letter approved (a letter replacing an email or a call at dispatch, or
-- re-sending a bounced email) whose action nobody has decided on.
-- params: $approval_stages (varchar[] of 'ladder|stage'), $letter_ladders (varchar[]), $as_of
select
    d.delivery_id,
    'pending_approval' as status,
    case when d.channel in ('letter', 'registered_letter')
              and list_contains($letter_ladders, coalesce(a.ladder, 'standard'))
         then 'ladder ' || a.ladder || ' requires approval of every letter before it is sent'
         else 'stage ' || a.stage || ' requires approval before anything is sent' end as detail
from deliveries d
join dunning_actions a using (action_id)
where d.status = 'planned'
  and a.as_of <= $as_of
  and (list_contains($approval_stages, coalesce(a.ladder, 'standard') || '|' || a.stage)
       or coalesce(a.requires_approval, false)
       or (d.channel in ('letter', 'registered_letter')
           and list_contains($letter_ladders, coalesce(a.ladder, 'standard'))))
  and a.decided_at is null
order by d.delivery_id
