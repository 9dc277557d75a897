#!/bin/sh
# Stand-in for a chat notification: what a wait handler would post.
echo "notify ${DAG_NAME}: waiting at ${DAG_WAITING_STEPS}" >> notifications.log
