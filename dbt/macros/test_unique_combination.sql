{#
    Generic test: no two rows share the same values in `columns` (the key of a model
    whose grain is more than one column). Written here because the project installs
    no packages (it must build offline).
#}
{% test unique_combination(model, columns) %}
    select
        {{ columns | join(', ') }},
        count(*) as n_rows
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}
