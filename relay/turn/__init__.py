"""TURN (RFC 8656) protocol core: allocation state, the allocation table with its expiry heap, the
request handler (`TurnCore`, its CreatePermission/ChannelBind half in `grants`) and the byte-level
helpers of the packet path (`wire`). Pure: no sockets, time passed in."""
