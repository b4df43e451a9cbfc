"""Hand the console and metrics models to their own apps: state only, the tables and their rows stay.

The content types move with them, so permissions and admin history that point at them keep pointing.
"""

from django.db import migrations

MOVED = {
    "console": ["consolesession", "consoleticket", "recording"],
    "metrics": ["desktopsample", "desktoprollup", "hostsample", "hostrollup"],
}


def _relabel(apps, schema_editor, *, forwards: bool) -> None:
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(schema_editor.connection.alias)
    for app_label, models in MOVED.items():
        source, target = ("desktops", app_label) if forwards else (app_label, "desktops")
        for model in models:
            # A content type already made under the target label (post_migrate of a fresh database) wins.
            if not content_types.filter(app_label=target, model=model).exists():
                content_types.filter(app_label=source, model=model).update(app_label=target)


def relabel_content_types(apps, schema_editor) -> None:
    _relabel(apps, schema_editor, forwards=True)


def restore_content_types(apps, schema_editor) -> None:
    _relabel(apps, schema_editor, forwards=False)


class Migration(migrations.Migration):

    dependencies = [
        ('desktops', '0003_metrics'),
        ('console', '0001_initial'),
        ('metrics', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                # Recording first: it points at ConsoleSession.
                migrations.DeleteModel(name='Recording'),
                migrations.DeleteModel(name='ConsoleSession'),
                migrations.DeleteModel(name='ConsoleTicket'),
                migrations.DeleteModel(name='DesktopSample'),
                migrations.DeleteModel(name='DesktopRollup'),
                migrations.DeleteModel(name='HostSample'),
                migrations.DeleteModel(name='HostRollup'),
            ],
            database_operations=[],
        ),
        migrations.RunPython(relabel_content_types, restore_content_types),
    ]
