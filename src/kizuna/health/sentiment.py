"""The CSM's own judgement of a relationship (1–5), a measure scorecards may weigh."""

from datetime import date

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.core import timeline
from kizuna.core.models import TimelineKind, User
from kizuna.health.models import CsmSentiment, Sentiment


@transaction.atomic
def record_sentiment(
    *,
    customer_id: int,
    sentiment: int,
    note: str = "",
    day: date | None = None,
    user: User | None = None,
) -> CsmSentiment:
    """Store the sentiment as of ``day`` (today) and put it on the customer's timeline.

    The latest sentiment within 180 days is what the ``sentiment`` measure reads.
    """
    value = Sentiment(sentiment)  # ValueError outside 1–5: the callers' forms check it first
    recorded = CsmSentiment.objects.create(
        customer_id=customer_id,
        sentiment=int(value),
        note=note.strip()[:500],
        recorded_on=day or timezone.localdate(),
        recorded_by=user,
    )
    timeline.record(
        customer_id=customer_id,
        kind=TimelineKind.SENTIMENT_RECORDED,
        title=_("CSM sentiment: {value}").format(value=value.label),
        body=recorded.note,
        actor=user,
        payload={"sentiment": int(value), "recorded_on": recorded.recorded_on.isoformat()},
    )
    return recorded
