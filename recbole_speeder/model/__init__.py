"""Models of the plugin: one model class per module, named like the module (RecBole's habit)."""
