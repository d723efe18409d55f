"""Campaign specs: TOML -> validated, frozen CampaignSpec; the axis syntax; spec errors."""
