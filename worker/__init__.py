"""kakao-dispatch worker: KakaoTalk rules, channel selection and (with Celery) the dispatch of send jobs.

Modules, in the order a job meets them: `send_request` (the request document), `recipients`
(MSISDNs), `channels` (which KakaoTalk kind and Sinch channel), `templates` (the registry),
`rules` and `media` (content limits, image probing), `sending_window` (FriendTalk hours),
`verdict` (all of it together), `sinch_body` (the exact `messages:send` body), `settings`.
"""
