"""Adopt the console tables that desktops made (0002_console): state only, no table is touched."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('desktops', '0002_console'),
        ('tenants', '0002_policies'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The tables exist already (made by desktops' 0002_console); only Django's picture of them moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ConsoleSession',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('admin_access', models.BooleanField(default=False, help_text="A tenant admin opened a member's console.")),
                        ('client_ip', models.GenericIPAddressField(blank=True, null=True)),
                        ('user_agent', models.CharField(blank=True, max_length=300)),
                        ('started_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('last_seen_at', models.DateTimeField(default=django.utils.timezone.now, help_text='Heartbeat of the proxy serving it.')),
                        ('ended_at', models.DateTimeField(blank=True, null=True)),
                        ('end_reason', models.CharField(blank=True, max_length=64)),
                        ('bytes_to_desktop', models.PositiveBigIntegerField(default=0)),
                        ('bytes_from_desktop', models.PositiveBigIntegerField(default=0)),
                        ('desktop', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='console_sessions', to='desktops.desktop')),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
                        ('user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'desktops_consolesession',
                        'ordering': ['-started_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='ConsoleTicket',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('token_hash', models.CharField(editable=False, max_length=64, unique=True)),
                        ('session_key_hash', models.CharField(editable=False, max_length=64)),
                        ('admin_access', models.BooleanField(default=False, help_text="Issued to a tenant admin for a member's desktop.")),
                        ('ip_address', models.GenericIPAddressField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('expires_at', models.DateTimeField()),
                        ('used_at', models.DateTimeField(blank=True, null=True)),
                        ('desktop', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='console_tickets', to='desktops.desktop')),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'desktops_consoleticket',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='Recording',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('path', models.CharField(help_text='Relative to RECORDINGS_ROOT.', max_length=500)),
                        ('started_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('ended_at', models.DateTimeField(blank=True, null=True)),
                        ('size_bytes', models.PositiveBigIntegerField(default=0)),
                        ('frames', models.PositiveIntegerField(default=0)),
                        ('duration_ms', models.PositiveBigIntegerField(default=0)),
                        ('desktop', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='recordings', to='desktops.desktop')),
                        ('session', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='recording', to='console.consolesession')),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
                        ('user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'desktops_recording',
                        'ordering': ['-started_at', '-id'],
                    },
                ),
                migrations.AddIndex(
                    model_name='consolesession',
                    index=models.Index(fields=['tenant', '-started_at'], name='desktops_co_tenant__821e00_idx'),
                ),
                migrations.AddIndex(
                    model_name='consolesession',
                    index=models.Index(fields=['ended_at', 'last_seen_at'], name='desktops_co_ended_a_39b7c4_idx'),
                ),
                migrations.AddIndex(
                    model_name='consoleticket',
                    index=models.Index(fields=['expires_at'], name='desktops_co_expires_1f70a5_idx'),
                ),
            ],
            database_operations=[],
        ),
    ]
