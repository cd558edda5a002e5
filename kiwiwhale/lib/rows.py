"""A model instance's INSERT, for a statement that writes it together with other rows."""

from dataclasses import dataclass

from django.db import router


@dataclass(frozen=True)
class RowInsert:
    """What Django's `instance.save()` would insert (each field's pre_save and database preparation, as
    SQLInsertCompiler does), less the `exclude`d fields, which the statement fills itself. No save signal is sent:
    only for models that have none."""

    instance: object
    table: str
    columns: tuple[str, ...]
    params: tuple

    @classmethod
    def of(cls, instance, *, connection, exclude: tuple[str, ...] = ()) -> "RowInsert":
        meta = type(instance)._meta
        fields = [field for field in meta.local_concrete_fields if field.name not in exclude]
        return cls(
            instance=instance,
            table=connection.ops.quote_name(meta.db_table),
            columns=tuple(connection.ops.quote_name(field.column) for field in fields),
            params=tuple(field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields),
        )

    def written(self) -> None:
        """Marks the instance saved, as save() leaves it, once the statement has inserted it."""
        self.instance._state.adding = False
        self.instance._state.db = router.db_for_write(type(self.instance))
