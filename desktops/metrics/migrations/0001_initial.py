"""Adopt the metrics tables that desktops made (0003_metrics): state only, no table is touched."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('desktops', '0003_metrics'),
        ('hosts', '0001_initial'),
        ('tenants', '0002_policies'),
    ]

    operations = [
        # The tables exist already (made by desktops' 0003_metrics); only Django's picture of them moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='DesktopRollup',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('resolution', models.CharField(choices=[('raw', 'Raw samples'), ('minute', 'Per minute'), ('hour', 'Per hour')], max_length=8)),
                        ('bucket', models.DateTimeField(help_text='Start of the minute or hour (UTC).')),
                        ('samples', models.PositiveIntegerField(default=0)),
                        ('vcpus', models.PositiveSmallIntegerField(default=0)),
                        ('cpu_percent', models.FloatField(null=True)),
                        ('cpu_percent_max', models.FloatField(null=True)),
                        ('memory_used_mib', models.FloatField(null=True)),
                        ('memory_used_mib_max', models.FloatField(null=True)),
                        ('disk_read_bps', models.FloatField(null=True)),
                        ('disk_write_bps', models.FloatField(null=True)),
                        ('net_rx_bps', models.FloatField(null=True)),
                        ('net_tx_bps', models.FloatField(null=True)),
                        ('desktop', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='desktops.desktop')),
                        ('tenant', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
                    ],
                    options={
                        'db_table': 'desktops_desktoprollup',
                        'ordering': ['bucket', 'id'],
                        'indexes': [models.Index(fields=['tenant', 'resolution', 'bucket'], name='desktoprollup_tenant_bucket'), models.Index(fields=['resolution', 'bucket'], name='desktoprollup_bucket')],
                        'constraints': [models.UniqueConstraint(fields=('desktop', 'resolution', 'bucket'), name='desktoprollup_unique_bucket')],
                    },
                ),
                migrations.CreateModel(
                    name='DesktopSample',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('at', models.DateTimeField()),
                        ('cpu_percent', models.FloatField(help_text="Share of the desktop's own vCPUs, 0-100.", null=True)),
                        ('disk_read_bps', models.FloatField(null=True)),
                        ('disk_write_bps', models.FloatField(null=True)),
                        ('net_rx_bps', models.FloatField(null=True)),
                        ('net_tx_bps', models.FloatField(null=True)),
                        ('memory_used_mib', models.FloatField(default=0)),
                        ('memory_total_mib', models.FloatField(default=0)),
                        ('vcpus', models.PositiveSmallIntegerField(default=0)),
                        ('cpu_time_ns', models.BigIntegerField(default=0)),
                        ('disk_read_bytes', models.BigIntegerField(default=0)),
                        ('disk_write_bytes', models.BigIntegerField(default=0)),
                        ('net_rx_bytes', models.BigIntegerField(default=0)),
                        ('net_tx_bytes', models.BigIntegerField(default=0)),
                        ('desktop', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='desktops.desktop')),
                        ('host', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='hosts.host')),
                        ('tenant', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
                    ],
                    options={
                        'db_table': 'desktops_desktopsample',
                        'ordering': ['at', 'id'],
                        'indexes': [models.Index(fields=['desktop', 'at'], name='desktopsample_desktop_at'), models.Index(fields=['host', 'at'], name='desktopsample_host_at')],
                    },
                ),
                migrations.CreateModel(
                    name='HostRollup',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('resolution', models.CharField(choices=[('raw', 'Raw samples'), ('minute', 'Per minute'), ('hour', 'Per hour')], max_length=8)),
                        ('bucket', models.DateTimeField(help_text='Start of the minute or hour (UTC).')),
                        ('samples', models.PositiveIntegerField(default=0)),
                        ('desktops', models.FloatField(null=True)),
                        ('cpu_percent', models.FloatField(null=True)),
                        ('cpu_percent_max', models.FloatField(null=True)),
                        ('cpu_cores', models.FloatField(null=True)),
                        ('memory_used_mib', models.FloatField(null=True)),
                        ('disk_read_bps', models.FloatField(null=True)),
                        ('disk_write_bps', models.FloatField(null=True)),
                        ('net_rx_bps', models.FloatField(null=True)),
                        ('net_tx_bps', models.FloatField(null=True)),
                        ('allocated_vcpus', models.FloatField(null=True)),
                        ('vcpu_capacity', models.FloatField(null=True)),
                        ('allocated_memory_mib', models.FloatField(null=True)),
                        ('memory_capacity_mib', models.FloatField(null=True)),
                        ('host', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='hosts.host')),
                    ],
                    options={
                        'db_table': 'desktops_hostrollup',
                        'ordering': ['bucket', 'id'],
                        'indexes': [models.Index(fields=['resolution', 'bucket'], name='hostrollup_bucket')],
                        'constraints': [models.UniqueConstraint(fields=('host', 'resolution', 'bucket'), name='hostrollup_unique_bucket')],
                    },
                ),
                migrations.CreateModel(
                    name='HostSample',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('at', models.DateTimeField()),
                        ('desktops', models.PositiveIntegerField(default=0, help_text='Desktops with a running VM.')),
                        ('cpu_percent', models.FloatField(help_text="Share of the host's CPUs the desktops used.", null=True)),
                        ('cpu_cores', models.FloatField(help_text="CPUs' worth of time the desktops used.", null=True)),
                        ('memory_used_mib', models.FloatField(default=0)),
                        ('disk_read_bps', models.FloatField(null=True)),
                        ('disk_write_bps', models.FloatField(null=True)),
                        ('net_rx_bps', models.FloatField(null=True)),
                        ('net_tx_bps', models.FloatField(null=True)),
                        ('cpus', models.PositiveIntegerField(default=0)),
                        ('memory_mib', models.PositiveBigIntegerField(default=0)),
                        ('free_memory_mib', models.PositiveBigIntegerField(default=0)),
                        ('allocated_vcpus', models.PositiveIntegerField(default=0)),
                        ('vcpu_capacity', models.PositiveIntegerField(default=0)),
                        ('allocated_memory_mib', models.PositiveBigIntegerField(default=0)),
                        ('memory_capacity_mib', models.PositiveBigIntegerField(default=0)),
                        ('host', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='hosts.host')),
                    ],
                    options={
                        'db_table': 'desktops_hostsample',
                        'ordering': ['at', 'id'],
                        'indexes': [models.Index(fields=['host', 'at'], name='hostsample_host_at')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
