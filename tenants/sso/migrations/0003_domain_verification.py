"""Domain verification: a routed domain is proved by a DNS TXT record before it routes sign-ins.

Domains routed before this existed are grandfathered: they keep routing (their tenants' people keep signing in as
yesterday) but stay unverified, so they neither take operators' passwords away nor keep another tenant that proves
the domain in DNS from taking it over. Each gets its own token (AddField's callable default is evaluated once).
"""

import django.core.validators
import django.utils.timezone
import tenants.sso.models
from django.db import migrations, models


def grandfather(apps, schema_editor):
    EmailDomain = apps.get_model("sso", "EmailDomain")
    for row in EmailDomain.objects.all():
        row.token = tenants.sso.models.new_token()
        row.grandfathered = True
        row.save(update_fields=["token", "grandfathered"])


class Migration(migrations.Migration):

    dependencies = [
        ('sso', '0002_ldap_providers'),
        ('tenants', '0012_token_exec_scope'),
    ]

    operations = [
        migrations.AddField(
            model_name='emaildomain',
            name='created_at',
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.AddField(
            model_name='emaildomain',
            name='grandfathered',
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.AddField(
            model_name='emaildomain',
            name='last_checked_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='emaildomain',
            name='last_error_code',
            field=models.CharField(blank=True, default='', editable=False, max_length=24),
        ),
        migrations.AddField(
            model_name='emaildomain',
            name='last_error_params',
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
        migrations.AddField(
            model_name='emaildomain',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('verified', 'Verified'), ('failed', 'Failed')], default='pending', max_length=8),
        ),
        migrations.AddField(
            model_name='emaildomain',
            name='token',
            field=models.CharField(default=tenants.sso.models.new_token, editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name='emaildomain',
            name='verified_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name='emaildomain',
            name='domain',
            field=models.CharField(db_index=True, max_length=253, validators=[django.core.validators.RegexValidator('^(?=.{3,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$')]),
        ),
        migrations.AddConstraint(
            model_name='emaildomain',
            constraint=models.UniqueConstraint(fields=('tenant', 'domain'), name='sso_domain_once_per_tenant'),
        ),
        migrations.AddConstraint(
            model_name='emaildomain',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'verified')), fields=('domain',), name='sso_domain_verified_once'),
        ),
        migrations.RunPython(grandfather, migrations.RunPython.noop),
    ]
