"""Reports and data exchange for the Ganzi workflows (报表与数据交换).

Excel import of project proposals and annual plans (:mod:`.importer`), Excel exports of
the project library, annual plan, asset ledger and audit trail (:mod:`.exports`), and the
policy reports: spending progress (:mod:`.spending`), industry share (:mod:`.industry`),
the county ranking (:mod:`.ranking`) and the collaboration targets 通报 (:mod:`.targets`).

Money is integer 分 inside and exact :class:`~decimal.Decimal` 万元 in every workbook;
every number of policy comes from :mod:`workflows.policy`. Every export is scoped by an
:class:`engine.scope.Actor`. The generic engine knows none of this.
"""
