"""The default metric definitions (metric_defaults.DEFAULT_METRICS), created once."""

from django.db import migrations


def create_defaults(apps, schema_editor):
    from kizuna.analytics.metric_defaults import ensure_default_metrics

    ensure_default_metrics(apps.get_model("analytics", "MetricDefinition"))


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_defaults, migrations.RunPython.noop),
    ]
