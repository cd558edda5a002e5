from django.core.servers.basehttp import WSGIServer

# The live test server listens with a backlog of 10; the burst and fuzzing tests open up to 60 connections at once,
# and a full backlog resets them before the app sees them. Set at collection, before the live server starts.
WSGIServer.request_queue_size = 128
