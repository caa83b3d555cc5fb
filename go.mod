module github.com/courierbus/courier

go 1.25
