"""The relay's processes: the entry point (`cli`, console script `bbb-turn-relay`), the supervisor of
worker processes (`workers`), one worker (`worker`) and the control-socket messages between them
(`ipc`)."""
